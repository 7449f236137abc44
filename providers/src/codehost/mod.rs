//! `CodeHost` adapters. Local: a git repository directory (the default);
//! GitHub comes with its own adapter.

mod git;

pub use git::LocalGit;
