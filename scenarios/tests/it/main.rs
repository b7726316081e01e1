//! The seeds' stories, end to end through the real command bus on the embedded SQLite store.

mod generate;
mod visits;
