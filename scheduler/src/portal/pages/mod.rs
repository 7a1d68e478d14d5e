//! The portal's pages, one module per area.

pub mod account;
pub mod admin;
pub mod booking;
pub mod calendar;
pub mod jobs;
pub mod login;
pub mod reservations;
pub mod usage;

use axum::response::{IntoResponse, Redirect, Response};

/// After a change: back to `to` (303, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
