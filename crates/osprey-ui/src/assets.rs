//! The embedded UI assets (`crates/osprey-ui/assets/`) and their content types.

/// One embedded file.
pub struct Asset {
    /// Path under `assets/`, as requested under `/ui/`.
    pub name: &'static str,
    pub bytes: &'static [u8],
}

impl Asset {
    /// A strong ETag from the content (FNV-1a, 64 bit).
    pub fn etag(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("\"{h:016x}\"")
    }
}

macro_rules! embed {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, bytes: include_bytes!(concat!("../assets/", $name)) }),*]
    };
}

/// Every embedded asset.
pub static ASSETS: &[Asset] = embed!(
    "index.html",
    "app.css",
    "app.js",
    "lib.js",
    "charts.js",
    "overview.js",
    "service.js",
    "map.js",
    "search.js",
    "trace.js",
    "sql.js",
    "favicon.svg",
);

/// The embedded asset called `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The content type for a file name, by extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
