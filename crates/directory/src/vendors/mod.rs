//! The SaaS directories, each reached through its documented REST API. They are tested
//! against local fixture servers that answer as the vendors document (tests/fixtures.rs).

pub mod auth0;
pub mod azure;
pub mod github;
pub mod gitlab;
pub mod google;
pub mod keycloak;
pub mod okta;
