//! The three API dialects, one file each: request fields to [`crate::jobs::JobRequest`], job
//! records to the dialect's answers, and its error format ([`super::Dialect`]).

pub mod acestep_api;
pub mod async_task;
pub mod producer;
