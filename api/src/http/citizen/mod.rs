//! What citizens reach: the JSON API and the pages of booking and of the capability link.

pub(crate) mod api;
pub(crate) mod booking;
pub(crate) mod caps;
pub(crate) mod lifetime;
pub(crate) mod pages;
pub(crate) mod service;
