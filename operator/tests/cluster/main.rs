//! The operator on a real Kubernetes API server: the binary with its watches, server-side
//! apply, CEL, finalizers and garbage collection, driven by kubectl as users drive it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

mod deletion;
mod gitops;
mod helm;
mod leader;
mod lifecycle;
mod options;
mod scale;
mod secrets;
mod validation;
