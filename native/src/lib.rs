//! Image kernels for the hall appliance.
//!
//! Every kernel is a plain Rust function over slices (see [`Image`]) and knows nothing of
//! Python. The `python` feature adds the thin binding layer in `bindings`.

mod analysis;
pub mod binarise;
mod blocks;
pub mod border;
pub mod clean;
mod components;
pub mod despeckle;
pub mod error;
pub mod geometry;
pub mod grey;
mod holes;
pub mod image;
pub mod orient;
pub mod phash;
mod profile;
pub mod quality;
mod quarter;
mod report;
pub mod rotate;
pub mod seal;
pub mod skew;
mod stage;
mod threads;
pub mod thumbnail;

#[cfg(test)]
mod testpage;

#[cfg(feature = "python")]
mod bindings;

pub use binarise::{binarise, Sauvola};
pub use border::find_content_box;
pub use clean::{clean_page, CleanOptions, CleanedPage};
pub use despeckle::{despeckle, Despeckle};
pub use error::KernelError;
pub use geometry::{CropBox, Rotation};
pub use grey::{red_channel, to_grey};
pub use image::{Image, ImageBuf};
pub use orient::{estimate_orientation, OrientationEstimate};
pub use phash::{hamming, phash};
pub use quality::{assess_page, Flags, Metrics};
pub use quarter::rotate_quarter;
pub use report::Report;
pub use rotate::rotate;
pub use seal::find_seals;
pub use skew::{estimate_skew, SkewEstimate};
pub use thumbnail::thumbnail;
