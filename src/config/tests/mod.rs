//! The configuration's parsing and errors, one file per topic; the helpers every topic uses.

use super::*;
use serde_json::json;

mod backends;
mod compare;
mod json;
mod mirror;
mod release;
mod routes;
mod tcp;

fn parse(value: serde_json::Value) -> Result<Config, ConfigError> {
    Config::from_json(value.to_string().as_bytes())
}

fn error_of(value: serde_json::Value) -> String {
    parse(value).unwrap_err().0
}

fn one_route(route: serde_json::Value) -> serde_json::Value {
    json!({"routes": [route]})
}
