//! One module per command: its flags (`Args`) and `run`, which calls the library and prints.

pub mod add;
pub mod bench;
pub mod bench_embed;
pub mod diagnose;
pub mod encode;
pub mod eval;
pub mod export;
pub mod fetch_model;
pub mod index;
pub mod info;
pub mod quantize;
pub mod remove;
pub mod search;
