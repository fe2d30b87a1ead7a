//! The thin PyO3 layer: converts numpy arrays, releases the GIL for every kernel call and maps
//! `KernelError` to the exceptions defined in `appliance.errors`.

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
