//! The administration API and its OpenAPI document.
