-- The original client's create form names the story's title and the
-- branch the work targets; a workflow may also name its test command
-- (API.md "The repository, and proof that the change works").
ALTER TABLE workflows ADD COLUMN jira_story_title TEXT;
ALTER TABLE workflows ADD COLUMN target_branch TEXT;
ALTER TABLE workflows ADD COLUMN test_command TEXT;
