//! End-to-end tests: each asserts what a person, the upstream or a subscriber sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod config;
mod directory;
mod failure;
mod lifecycle;
mod login;
mod policy;
