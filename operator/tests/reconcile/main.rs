//! `reconcile()` against an in-memory API server and the real Kafka broker.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
mod credentials;
mod failures;
mod lifecycle;
mod manual;
mod pod;
