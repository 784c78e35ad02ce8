//! ggml tensor types (block sizes, names) and llama.cpp's file-type names.

/// A ggml tensor type: its name, elements per block and bytes per block.
pub(crate) struct TensorType {
    pub name: &'static str,
    pub block: u64,
    pub bytes: u64,
}

const fn t(name: &'static str, block: u64, bytes: u64) -> Option<TensorType> {
    Some(TensorType { name, block, bytes })
}

/// The ggml type with this id, as llama.cpp's `ggml.h` numbers them (`None` for ids that were
/// never assigned or that this reader does not know).
pub(crate) fn tensor_type(id: u32) -> Option<TensorType> {
    match id {
        0 => t("F32", 1, 4),
        1 => t("F16", 1, 2),
        2 => t("Q4_0", 32, 18),
        3 => t("Q4_1", 32, 20),
        6 => t("Q5_0", 32, 22),
        7 => t("Q5_1", 32, 24),
        8 => t("Q8_0", 32, 34),
        9 => t("Q8_1", 32, 36),
        10 => t("Q2_K", 256, 84),
        11 => t("Q3_K", 256, 110),
        12 => t("Q4_K", 256, 144),
        13 => t("Q5_K", 256, 176),
        14 => t("Q6_K", 256, 210),
        15 => t("Q8_K", 256, 292),
        16 => t("IQ2_XXS", 256, 66),
        17 => t("IQ2_XS", 256, 74),
        18 => t("IQ3_XXS", 256, 98),
        19 => t("IQ1_S", 256, 50),
        20 => t("IQ4_NL", 32, 18),
        21 => t("IQ3_S", 256, 110),
        22 => t("IQ2_S", 256, 82),
        23 => t("IQ4_XS", 256, 136),
        24 => t("I8", 1, 1),
        25 => t("I16", 1, 2),
        26 => t("I32", 1, 4),
        27 => t("I64", 1, 8),
        28 => t("F64", 1, 8),
        29 => t("IQ1_M", 256, 56),
        30 => t("BF16", 1, 2),
        // Repacked Q4_0 / IQ4_NL layouts (no longer written, still readable).
        31 => t("Q4_0_4_4", 32, 18),
        32 => t("Q4_0_4_8", 32, 18),
        33 => t("Q4_0_8_8", 32, 18),
        34 => t("TQ1_0", 256, 54),
        35 => t("TQ2_0", 256, 66),
        36 => t("IQ4_NL_4_4", 32, 18),
        37 => t("IQ4_NL_4_8", 32, 18),
        38 => t("IQ4_NL_8_8", 32, 18),
        39 => t("MXFP4", 32, 17),
        _ => None,
    }
}
