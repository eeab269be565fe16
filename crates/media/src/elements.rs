//! Which GStreamer elements stemfeed needs, and which of them are missing.

/// Elements used by stemfeed's pipelines, with the Debian package providing each.
pub const REQUIRED: &[(&str, &str)] = &[
    ("filesrc", "libgstreamer1.0-0"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("parsebin", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avenc_aac", "gstreamer1.0-libav"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("hlssink2", "gstreamer1.0-plugins-bad"),
    ("jpegenc", "gstreamer1.0-plugins-good"),
    ("videoflip", "gstreamer1.0-plugins-good"),
    // Platform exports (burned-in captions).
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("textoverlay", "gstreamer1.0-x"),
];

/// `(element, package)` for every required element this machine lacks.
pub fn missing(required: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    required
        .iter()
        .filter(|(name, _)| gstreamer::ElementFactory::find(name).is_none())
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_absent_elements() {
        crate::init().unwrap();
        let probe = [("filesrc", "core"), ("no-such-element-xyz", "nowhere")];
        assert_eq!(missing(&probe), vec![("no-such-element-xyz", "nowhere")]);
    }
}
