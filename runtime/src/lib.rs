#![doc = include_str!("../README.md")]

pub mod secret;

pub use secret::Secret;
