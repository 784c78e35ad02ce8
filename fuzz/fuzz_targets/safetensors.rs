//! The safetensors header reader (`minerva_core::hf::safetensors_header_from`) on arbitrary
//! bytes: it never panics, and a header it accepts describes tensors inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerva_core::hf::{dtype_size, safetensors_header_from};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok((size, tensors)) = safetensors_header_from(data, len, Path::new("fuzz.safetensors"))
    else {
        return;
    };
    assert_eq!(size, len, "the file's size is reported as it is");
    assert!(len >= 8, "accepted without its 8-byte header length");
    let header = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let data_bytes = len - 8 - header;
    for t in &tensors {
        assert_ne!(t.name, "__metadata__", "the metadata is not a tensor");
        if let Some(size) = dtype_size(&t.dtype) {
            let bytes = t.elements.checked_mul(size);
            assert!(
                bytes.is_some_and(|b| b <= data_bytes),
                "tensor {} ({} {}) is larger than the {data_bytes} data bytes",
                t.name,
                t.elements,
                t.dtype
            );
        }
    }
});
