//! The thin PyO3 layer: converts numpy arrays, releases the GIL for every kernel call and maps
//! `KernelError` to the exceptions defined in `appliance.errors`.
//!
//! Input arrays are borrowed read-only without copying when C-contiguous and copied once
//! otherwise. The GIL is released (through [`detached`] only) while a kernel runs, so callers
//! must not write to an array from another thread while a kernel is reading it.

use crate::clean::CleanOptions;
use crate::geometry::Rotation;
use crate::image::{Image, ImageBuf};
use crate::KernelError;
use numpy::{
    dtype, IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTypeMethods;

pyo3::import_exception!(appliance.errors, ImageDtypeError);
pyo3::import_exception!(appliance.errors, ImageShapeError);
pyo3::import_exception!(appliance.errors, EmptyImageError);

type PyImage<'py> = Bound<'py, PyArrayDyn<u8>>;

/// Maps a kernel error to its Python exception (bad arguments become `ValueError`).
fn kernel_error(error: KernelError) -> PyErr {
    match error {
        KernelError::Empty(msg) => EmptyImageError::new_err(msg),
        KernelError::Shape(msg) => ImageShapeError::new_err(msg),
        KernelError::Argument(msg) => PyValueError::new_err(msg),
    }
}

/// Runs a kernel with the GIL released; every kernel call goes through here.
fn detached<T, F>(py: Python<'_>, kernel: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, KernelError> + Send,
    T: Send,
{
    py.detach(kernel).map_err(kernel_error)
}

/// Pixels of an array handed in from Python.
struct Pixels<'py> {
    array: PyReadonlyArrayDyn<'py, u8>,
    width: usize,
    height: usize,
    channels: usize,
}

impl<'py> Pixels<'py> {
    /// Checks type, dtype and shape (`H x W` grey or `H x W x 3` BGR, non-empty).
    fn new(object: &Bound<'py, PyAny>) -> PyResult<Self> {
        let untyped = object.cast::<PyUntypedArray>().map_err(|_| {
            let name = object
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            PyTypeError::new_err(format!("expected a numpy.ndarray, got {name}"))
        })?;
        let found = untyped.dtype();
        if !found.is_equiv_to(&dtype::<u8>(object.py())) {
            return Err(ImageDtypeError::new_err(format!(
                "expected uint8 pixels, got dtype {found}; scale and convert with astype(np.uint8)"
            )));
        }
        let (height, width, channels) = match *untyped.shape() {
            [h, w] => (h, w, 1),
            [h, w, 3] => (h, w, 3),
            ref shape => {
                return Err(ImageShapeError::new_err(format!(
                    "expected an H x W (grey) or H x W x 3 (BGR) array, got shape {shape:?}"
                )))
            }
        };
        if height == 0 || width == 0 {
            return Err(EmptyImageError::new_err(format!(
                "the image is {height}x{width} pixels; it needs at least one row and one column"
            )));
        }
        let array = untyped
            .cast::<PyArrayDyn<u8>>()?
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("cannot read the array: {e}")))?;
        Ok(Self {
            array,
            width,
            height,
            channels,
        })
    }

    /// Runs `kernel` on the pixels with the GIL released: in place when the array is
    /// C-contiguous, else on a C-ordered copy (made with the GIL released too).
    fn run<T, F>(&self, py: Python<'_>, kernel: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(Image<'_>) -> Result<T, KernelError> + Send,
    {
        let view = self.array.as_array();
        let (width, height, channels) = (self.width, self.height, self.channels);
        detached(py, move || match view.to_slice() {
            Some(data) => kernel(Image::new(data, width, height, channels)?),
            None => {
                let copy: Vec<u8> = view.iter().copied().collect();
                kernel(Image::new(&copy, width, height, channels)?)
            }
        })
    }
}

fn to_numpy(py: Python<'_>, image: ImageBuf) -> PyResult<PyImage<'_>> {
    Ok(image.into_array().map_err(kernel_error)?.into_pyarray(py))
}

/// Luma of a BGR page (a grey page is copied).
#[pyfunction]
fn to_grey<'py>(py: Python<'py>, image: &Bound<'py, PyAny>) -> PyResult<PyImage<'py>> {
    let out = Pixels::new(image)?.run(py, |image| Ok(crate::to_grey(image)))?;
    to_numpy(py, out)
}

/// Red channel of a BGR page (a grey page is copied).
#[pyfunction]
fn red_channel<'py>(py: Python<'py>, image: &Bound<'py, PyAny>) -> PyResult<PyImage<'py>> {
    let out = Pixels::new(image)?.run(py, |image| Ok(crate::red_channel(image)))?;
    to_numpy(py, out)
}

/// `(deskew_deg, confidence)` of a page within `±max_deg`.
#[pyfunction]
fn estimate_skew(py: Python<'_>, image: &Bound<'_, PyAny>, max_deg: f64) -> PyResult<(f64, f64)> {
    let estimate = Pixels::new(image)?.run(py, |image| crate::estimate_skew(image, max_deg))?;
    Ok((estimate.angle_deg, estimate.confidence))
}

/// Bilinear rotation, counter-clockwise, onto an expanded white canvas.
#[pyfunction]
fn rotate<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    angle_deg: f64,
    threads: usize,
) -> PyResult<PyImage<'py>> {
    let out = Pixels::new(image)?.run(py, |image| crate::rotate(image, angle_deg, threads))?;
    to_numpy(py, out)
}

/// Exact rotation by quarter turns, counter-clockwise (like `numpy.rot90`).
#[pyfunction]
fn rotate_quarter<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    turns: i64,
) -> PyResult<PyImage<'py>> {
    let out = Pixels::new(image)?.run(py, |image| Ok(crate::rotate_quarter(image, turns)))?;
    to_numpy(py, out)
}

/// `(x0, y0, x1, y1)` of the paper; `source_size` and `angle_deg` describe the rotation whose
/// canvas `image` is, if any.
#[pyfunction]
fn find_content_box(
    py: Python<'_>,
    image: &Bound<'_, PyAny>,
    source_size: Option<(usize, usize)>,
    angle_deg: f64,
) -> PyResult<(usize, usize, usize, usize)> {
    let b = Pixels::new(image)?.run(py, |image| {
        let rotation = source_size
            .map(|(w, h)| Rotation::new(w, h, angle_deg))
            .transpose()?;
        crate::find_content_box(image, rotation.as_ref())
    })?;
    Ok((b.x0, b.y0, b.x1, b.y1))
}

/// Area-averaged thumbnail with the long side at most `max_side`.
#[pyfunction]
fn thumbnail<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    max_side: usize,
) -> PyResult<PyImage<'py>> {
    let out = Pixels::new(image)?.run(py, |image| crate::thumbnail(image, max_side))?;
    to_numpy(py, out)
}

/// What `clean_page` hands back to Python.
type CleanTuple<'py> = (
    PyImage<'py>,
    Option<PyImage<'py>>,
    PyImage<'py>,
    f64,
    f64,
    (usize, usize, usize, usize),
    f64,
);

/// The whole clean-up stage: `(image, ocr_input or None, thumbnail, deskew_deg,
/// skew_confidence, crop_box, border_share)`.
#[pyfunction]
fn clean_page<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    thumbnail_max_side: usize,
    max_skew_deg: f64,
    threads: usize,
) -> PyResult<CleanTuple<'py>> {
    let options = CleanOptions {
        thumbnail_max_side,
        max_skew_deg,
        threads,
    };
    let page = Pixels::new(image)?.run(py, |image| crate::clean_page(image, &options))?;
    let b = page.crop_box;
    Ok((
        to_numpy(py, page.image)?,
        page.ocr_input.map(|o| to_numpy(py, o)).transpose()?,
        to_numpy(py, page.thumbnail)?,
        page.deskew_deg,
        page.skew_confidence,
        (b.x0, b.y0, b.x1, b.y1),
        page.border_share,
    ))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(to_grey, m)?)?;
    m.add_function(wrap_pyfunction!(red_channel, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_skew, m)?)?;
    m.add_function(wrap_pyfunction!(rotate, m)?)?;
    m.add_function(wrap_pyfunction!(rotate_quarter, m)?)?;
    m.add_function(wrap_pyfunction!(find_content_box, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail, m)?)?;
    m.add_function(wrap_pyfunction!(clean_page, m)?)?;
    Ok(())
}
