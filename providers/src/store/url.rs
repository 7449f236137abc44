//! `DATABASE_URL` in the forms the original service (SQLAlchemy) and sqlx
//! users write it.

use std::path::PathBuf;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created if missing).
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (tests, throwaway runs).
    SqliteMemory,
    /// A PostgreSQL connection URL in the form sqlx takes (`postgres://…`).
    Postgres(String),
}

impl DatabaseUrl {
    /// The original's default: `sqlite:///./ai_team.db`.
    pub const DEFAULT: &'static str = "sqlite:///./ai_team.db";

    /// Accepts `sqlite:///relative.db` and `sqlite:////absolute.db`
    /// (SQLAlchemy: what follows `sqlite:///` is the path), `sqlite://file.db`
    /// and `sqlite:file.db` (sqlx), `sqlite::memory:`, and
    /// `postgres://`, `postgresql://`, `postgresql+<driver>://`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let rest = rest.split('?').next().unwrap_or_default();
            let path = rest
                .strip_prefix("///")
                .or_else(|| rest.strip_prefix("//"))
                .unwrap_or(rest);
            return match path {
                "" | ":memory:" => Ok(Self::SqliteMemory),
                p => Ok(Self::SqliteFile(PathBuf::from(p))),
            };
        }
        let scheme_end = raw
            .find("://")
            .ok_or_else(|| "expected sqlite:///path.db or postgres://user@host/db".to_owned())?;
        let (scheme, rest) = (&raw[..scheme_end], &raw[scheme_end..]);
        let base = scheme.split('+').next().unwrap_or_default();
        match base {
            "postgres" | "postgresql" => {
                if rest.len() <= 3 {
                    return Err("the PostgreSQL URL names no host".into());
                }
                Ok(Self::Postgres(format!("postgres{rest}")))
            }
            other => Err(format!(
                "unsupported database scheme {other:?}: use sqlite or postgres"
            )),
        }
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::SqliteFile(p) => format!("sqlite:{}", p.display()),
            Self::SqliteMemory => "sqlite::memory:".into(),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let creds = &url[s + 3..at];
                    let user = creds.split(':').next().unwrap_or_default();
                    format!("postgres://{user}:***@{}", &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_and_sqlx_forms_are_both_understood() {
        let file = |p: &str| Ok(DatabaseUrl::SqliteFile(PathBuf::from(p)));
        assert_eq!(
            DatabaseUrl::parse(DatabaseUrl::DEFAULT),
            file("./ai_team.db")
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:////var/db/a.db"),
            file("/var/db/a.db")
        );
        assert_eq!(DatabaseUrl::parse("sqlite://a.db"), file("a.db"));
        assert_eq!(DatabaseUrl::parse("sqlite:a.db?mode=rwc"), file("a.db"));
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:"),
            Ok(DatabaseUrl::SqliteMemory)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Ok(DatabaseUrl::SqliteMemory)
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql+psycopg2://u:p@h:5432/db"),
            Ok(DatabaseUrl::Postgres("postgres://u:p@h:5432/db".into()))
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("nonsense").is_err());
        assert!(DatabaseUrl::parse("postgres://").is_err());
    }

    #[test]
    fn redaction_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://me:s3cret@db:5432/app").unwrap();
        assert_eq!(url.redacted(), "postgres://me:***@db:5432/app");
        assert!(!url.redacted().contains("s3cret"));
    }
}
