//! Placeholder: TIFF through libtiff.
