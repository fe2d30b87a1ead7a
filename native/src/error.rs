//! One error enum for every kernel; the binding layer maps it to the Python exceptions
//! defined in `appliance.errors`.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum KernelError {
    #[error("empty image: {0}")]
    Empty(String),
    #[error("wrong shape: {0}")]
    Shape(String),
    #[error("invalid argument: {0}")]
    Argument(String),
}
