//! The thin PyO3 layer: converts numpy arrays, releases the GIL for every kernel call and maps
//! `KernelError` to the exceptions defined in `appliance.errors`.
//!
//! Input arrays are borrowed read-only without copying when C-contiguous and copied once
//! otherwise. The GIL is released (through [`detached`] only) while a kernel runs, so callers
//! must not write to an array from another thread while a kernel is reading it.

use crate::clean::CleanOptions;
use crate::geometry::{CropBox, Rotation};
use crate::image::{Image, ImageBuf};
use crate::quality::Metrics;
use crate::KernelError;
use numpy::{
    dtype, IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTypeMethods};

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

/// `(blank, metrics)` of a page that needs no deskewing or cropping.
#[pyfunction]
#[pyo3(signature = (image, dpi=None))]
fn assess_page<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    dpi: Option<f64>,
) -> PyResult<(bool, Bound<'py, PyDict>)> {
    let (blank, metrics) = Pixels::new(image)?.run(py, |image| crate::assess_page(image, dpi))?;
    Ok((blank, metrics_dict(py, &metrics)?))
}

/// Sauvola binarisation of the OCR channel (0 = black, 255 = white).
#[pyfunction]
fn binarise<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    window: usize,
    k: f64,
    threads: usize,
) -> PyResult<PyImage<'py>> {
    let params = crate::Sauvola { window, k };
    let out = Pixels::new(image)?.run(py, |image| crate::binarise(image, &params, threads))?;
    to_numpy(py, out)
}

/// Removes small isolated black components from a bilevel page.
#[pyfunction]
fn despeckle<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    max_area: usize,
    keep_radius: usize,
) -> PyResult<PyImage<'py>> {
    let params = crate::Despeckle {
        max_area,
        keep_radius,
    };
    let out = Pixels::new(image)?.run(py, |image| crate::despeckle(image, &params))?;
    to_numpy(py, out)
}

/// `(orientation_deg, confidence)` of a deskewed page.
#[pyfunction]
fn estimate_orientation(
    py: Python<'_>,
    image: &Bound<'_, PyAny>,
    threads: usize,
) -> PyResult<(u32, f64)> {
    let e = Pixels::new(image)?.run(py, |image| crate::estimate_orientation(image, threads))?;
    Ok((e.orientation_deg, e.confidence))
}

/// Boxes `(x0, y0, x1, y1)` of the red seals on a BGR page.
#[pyfunction]
#[pyo3(signature = (image, dpi=None))]
fn find_seals(
    py: Python<'_>,
    image: &Bound<'_, PyAny>,
    dpi: Option<f64>,
) -> PyResult<Vec<BoxTuple>> {
    if let Some(d) = dpi.filter(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(PyValueError::new_err(format!(
            "dpi must be positive, got {d}"
        )));
    }
    let seals = Pixels::new(image)?.run(py, |image| Ok(crate::find_seals(image, dpi)))?;
    Ok(seals.iter().map(box_tuple).collect())
}

/// 64-bit perceptual hash.
#[pyfunction]
fn phash(py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<u64> {
    Pixels::new(image)?.run(py, crate::phash)
}

type BoxTuple = (usize, usize, usize, usize);

fn box_tuple(b: &CropBox) -> BoxTuple {
    (b.x0, b.y0, b.x1, b.y1)
}

fn metrics_dict<'py>(py: Python<'py>, m: &Metrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in [
        ("sharpness", m.sharpness),
        ("blur_mm", m.blur_mm),
        ("contrast", m.contrast),
        ("brightness", m.brightness),
        ("paper_level", m.paper_level),
        ("skew_deg", m.skew_deg),
        ("residual_skew_deg", m.residual_skew_deg),
        ("effective_dpi", m.effective_dpi),
        ("border_share", m.border_share),
        ("ink_coverage", m.ink_coverage),
        ("colour_share", m.colour_share),
    ] {
        d.set_item(name, value)?;
    }
    Ok(d)
}

/// The report of `clean_page` as a dict (see `appliance.imaging.CleanReport`).
fn report_dict<'py>(py: Python<'py>, r: &crate::Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("deskew_deg", r.deskew_deg)?;
    d.set_item("skew_confidence", r.skew_confidence)?;
    d.set_item("orientation_deg", r.orientation_deg)?;
    d.set_item("orientation_confidence", r.orientation_confidence)?;
    d.set_item("crop_box", box_tuple(&r.crop_box))?;
    let seals: Vec<BoxTuple> = r.seal_boxes.iter().map(box_tuple).collect();
    d.set_item("seal_boxes", seals)?;
    d.set_item("blank", r.blank)?;
    d.set_item("phash", r.phash)?;
    d.set_item("metrics", metrics_dict(py, &r.metrics)?)?;
    d.set_item("flags", r.flags.names())?;
    Ok(d)
}

/// What `clean_page` hands back: `(image, ocr_input or None, bilevel, thumbnail, report)`.
type CleanTuple<'py> = (
    PyImage<'py>,
    Option<PyImage<'py>>,
    PyImage<'py>,
    PyImage<'py>,
    Bound<'py, PyDict>,
);

/// The whole clean-up chain.
#[pyfunction]
#[pyo3(signature = (image, thumbnail_max_side, max_skew_deg, threads, dpi=None,
                    sauvola_window=None, sauvola_k=0.2, speck_max_area=None,
                    speck_keep_radius=None, orientation=true, seal_halftone=true))]
#[allow(clippy::too_many_arguments)]
fn clean_page<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    thumbnail_max_side: usize,
    max_skew_deg: f64,
    threads: usize,
    dpi: Option<f64>,
    sauvola_window: Option<usize>,
    sauvola_k: f64,
    speck_max_area: Option<usize>,
    speck_keep_radius: Option<usize>,
    orientation: bool,
    seal_halftone: bool,
) -> PyResult<CleanTuple<'py>> {
    let options = CleanOptions {
        thumbnail_max_side,
        max_skew_deg,
        threads,
        dpi,
        sauvola_window,
        sauvola_k,
        speck_max_area,
        speck_keep_radius,
        orientation,
        seal_halftone,
    };
    let page = Pixels::new(image)?.run(py, |image| crate::clean_page(image, &options))?;
    let report = report_dict(py, &page.report)?;
    Ok((
        to_numpy(py, page.image)?,
        page.ocr_input.map(|o| to_numpy(py, o)).transpose()?,
        to_numpy(py, page.bilevel)?,
        to_numpy(py, page.thumbnail)?,
        report,
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
    m.add_function(wrap_pyfunction!(binarise, m)?)?;
    m.add_function(wrap_pyfunction!(despeckle, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_orientation, m)?)?;
    m.add_function(wrap_pyfunction!(find_seals, m)?)?;
    m.add_function(wrap_pyfunction!(phash, m)?)?;
    m.add_function(wrap_pyfunction!(assess_page, m)?)?;
    m.add_function(wrap_pyfunction!(clean_page, m)?)?;
    Ok(())
}
