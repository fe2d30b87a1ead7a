//! Borrowed and owned 8-bit pages: grey (one channel) or BGR (three interleaved channels), rows
//! packed without padding. Every kernel takes an [`Image`] and returns an [`ImageBuf`].

use crate::error::KernelError;
use ndarray::{ArrayD, ArrayView2, ArrayView3, IxDyn};

/// A borrowed, validated page: non-empty, one or three channels, `width * height * channels`
/// bytes in row-major order.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    channels: usize,
}

impl<'a> Image<'a> {
    /// Validates the geometry of a packed pixel buffer.
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        channels: usize,
    ) -> Result<Self, KernelError> {
        if channels != 1 && channels != 3 {
            return Err(KernelError::Shape(format!(
                "expected 1 (grey) or 3 (BGR) channels, got {channels}"
            )));
        }
        if width == 0 || height == 0 {
            return Err(KernelError::Empty(format!(
                "the image is {height}x{width} pixels; it needs at least one row and one column"
            )));
        }
        let expected = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(channels))
            .ok_or_else(|| KernelError::Shape(format!("{height}x{width} image is too large")))?;
        if data.len() != expected {
            return Err(KernelError::Shape(format!(
                "{height}x{width}x{channels} image needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
            channels,
        })
    }

    /// Borrows an `H x W` grey view; it must be in standard (C) layout.
    pub fn from_grey(view: ArrayView2<'a, u8>) -> Result<Self, KernelError> {
        let (height, width) = view.dim();
        let data = view.to_slice().ok_or_else(not_contiguous)?;
        Self::new(data, width, height, 1)
    }

    /// Borrows an `H x W x 3` BGR view; it must be in standard (C) layout.
    pub fn from_bgr(view: ArrayView3<'a, u8>) -> Result<Self, KernelError> {
        let (height, width, channels) = view.dim();
        if channels != 3 {
            return Err(KernelError::Shape(format!(
                "expected H x W x 3 (BGR), got {height} x {width} x {channels}"
            )));
        }
        let data = view.to_slice().ok_or_else(not_contiguous)?;
        Self::new(data, width, height, 3)
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// True for BGR pages.
    pub fn is_colour(&self) -> bool {
        self.channels == 3
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width * self.channels
    }

    /// The bytes of row `y` (`y < height`).
    pub fn row(&self, y: usize) -> &'a [u8] {
        let stride = self.stride();
        &self.data[y * stride..(y + 1) * stride]
    }
}

fn not_contiguous() -> KernelError {
    KernelError::Shape("the pixel array is not C-contiguous; copy it first".to_owned())
}

/// An owned page with the same layout rules as [`Image`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBuf {
    data: Vec<u8>,
    width: usize,
    height: usize,
    channels: usize,
}

impl ImageBuf {
    /// Wraps a packed buffer, checking its geometry like [`Image::new`].
    pub fn from_vec(
        data: Vec<u8>,
        width: usize,
        height: usize,
        channels: usize,
    ) -> Result<Self, KernelError> {
        Image::new(&data, width, height, channels)?;
        Ok(Self {
            data,
            width,
            height,
            channels,
        })
    }

    /// A page of one colour; the caller guarantees non-zero sizes and 1 or 3 channels.
    pub(crate) fn filled(width: usize, height: usize, channels: usize, value: u8) -> Self {
        Self {
            data: vec![value; width * height * channels],
            width,
            height,
            channels,
        }
    }

    /// Copies a borrowed page.
    pub fn copy_of(image: Image<'_>) -> Self {
        Self {
            data: image.data.to_vec(),
            width: image.width,
            height: image.height,
            channels: image.channels,
        }
    }

    pub fn view(&self) -> Image<'_> {
        Image {
            data: &self.data,
            width: self.width,
            height: self.height,
            channels: self.channels,
        }
    }

    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The pixels as an `H x W` or `H x W x 3` array, without copying.
    pub fn into_array(self) -> Result<ArrayD<u8>, KernelError> {
        let shape = if self.channels == 1 {
            vec![self.height, self.width]
        } else {
            vec![self.height, self.width, self.channels]
        };
        ArrayD::from_shape_vec(IxDyn(&shape), self.data)
            .map_err(|e| KernelError::Shape(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3, Axis};

    #[test]
    fn rejects_bad_geometry() {
        assert!(matches!(
            Image::new(&[], 0, 3, 1),
            Err(KernelError::Empty(_))
        ));
        assert!(matches!(
            Image::new(&[0; 8], 2, 1, 4),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            Image::new(&[0; 5], 2, 2, 1),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            Image::new(&[0; 1], usize::MAX, 2, 1),
            Err(KernelError::Shape(_))
        ));
    }

    #[test]
    fn views_need_standard_layout() {
        let grey = Array2::<u8>::zeros((3, 4));
        assert!(Image::from_grey(grey.view()).is_ok());
        assert!(Image::from_grey(grey.t()).is_err());
        let bgr = Array3::<u8>::zeros((3, 4, 3));
        let image = Image::from_bgr(bgr.view()).unwrap();
        assert_eq!((image.width(), image.height(), image.channels()), (4, 3, 3));
        assert!(Image::from_bgr(bgr.slice_axis(Axis(2), (0..2).into())).is_err());
    }

    #[test]
    fn round_trips_through_ndarray() {
        let buf = ImageBuf::from_vec((0..24).collect(), 4, 2, 3).unwrap();
        let array = buf.clone().into_array().unwrap();
        assert_eq!(array.shape(), &[2, 4, 3]);
        assert_eq!(buf.view().row(1)[0], 12);
    }
}
