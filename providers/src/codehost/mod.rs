//! `CodeHost` adapters. Local: a git repository directory (the default);
//! GitHub comes with its own adapter.

mod local_git;
mod new_repository;

pub use local_git::LocalGit;
