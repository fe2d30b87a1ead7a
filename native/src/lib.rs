//! Image kernels for the hall appliance.
//!
//! Every kernel is a plain Rust function over slices (see [`Image`]) and knows nothing of
//! Python. The `python` feature adds the thin binding layer in `bindings`.

mod analysis;
pub mod border;
pub mod clean;
pub mod error;
pub mod geometry;
pub mod grey;
pub mod image;
mod profile;
pub mod rotate;
pub mod skew;
pub mod thumbnail;

#[cfg(test)]
mod testpage;

#[cfg(feature = "python")]
mod bindings;

pub use border::find_content_box;
pub use clean::{clean_page, CleanOptions, CleanedPage};
pub use error::KernelError;
pub use geometry::{CropBox, Rotation};
pub use grey::{red_channel, to_grey};
pub use image::{Image, ImageBuf};
pub use rotate::{rotate, rotate_quarter};
pub use skew::{estimate_skew, SkewEstimate};
pub use thumbnail::thumbnail;
