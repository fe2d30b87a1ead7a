//! Image kernels for the hall appliance.
//!
//! Every kernel is a plain Rust function over slices or `ndarray` views and knows nothing of
//! Python. The `python` feature adds the thin binding layer in [`bindings`].

pub mod error;

#[cfg(feature = "python")]
mod bindings;

pub use error::KernelError;
