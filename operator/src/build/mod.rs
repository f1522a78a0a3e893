//! Pure builders: every child object of a sink as data, from the spec and what was resolved.

pub mod credentials;
pub mod deployment;
pub mod hash;
pub mod meta;
pub mod network_policy;
pub mod password_move;

#[cfg(test)]
pub(crate) mod testing;
