//! The four plots on a synthetic flight through the zurich track: the PNGs are written, have the
//! requested size and are not blank; degenerate inputs give an image or a named error, never a
//! panic. Set `RACING_PLOT_EXAMPLES=<dir>` to keep the images there for a look.

use racing::Track;
use racing::plot::{
    PlotError, Trajectory, curves_png, states_controls_png, top_down_png, view_3d_png,
};
use std::path::{Path, PathBuf};

const DT: f64 = 0.02;

/// A fresh directory under the system temp dir, unique to this test and process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("racing-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Cubic Hermite curve from the spawn pose through every gate in order and back to gate 1,
/// leaving each waypoint along its heading (the gate normal) so that it is crossed the right
/// way, including the split-S loop between gates 4 and 5. Each segment takes chord / 8 m/s, so
/// the speed varies along the curve; velocities by finite differences, thrust from the
/// acceleration (m = 0.75 kg) and body rates from the heading and climb changes.
fn synthetic_flight(track: &Track) -> Trajectory {
    let start = track.start.expect("zurich has a spawn pose");
    let mut way: Vec<([f64; 3], [f64; 3])> = vec![(
        [start[0], start[1], start[2]],
        [start[3].cos(), start[3].sin(), 0.0],
    )];
    for g in track.gates.iter().chain(track.gates.first()) {
        way.push((g.center, g.normal()));
    }
    let mut pos = Vec::new();
    for w in way.windows(2) {
        let ((p0, n0), (p1, n1)) = (w[0], w[1]);
        let chord = ((0..3).map(|k| (p1[k] - p0[k]).powi(2)).sum::<f64>()).sqrt();
        let tangent = chord.max(3.0) * 1.2;
        let steps = ((chord / 8.0) / DT).ceil().max(10.0) as usize;
        for i in 0..steps {
            let u = i as f64 / steps as f64;
            let (h00, h10, h01, h11) = (
                2.0 * u.powi(3) - 3.0 * u * u + 1.0,
                u.powi(3) - 2.0 * u * u + u,
                -2.0 * u.powi(3) + 3.0 * u * u,
                u.powi(3) - u * u,
            );
            pos.push(std::array::from_fn(|k| {
                h00 * p0[k] + h10 * tangent * n0[k] + h01 * p1[k] + h11 * tangent * n1[k]
            }));
        }
    }
    pos.push(way.last().unwrap().0);
    let n = pos.len();
    let diff = |a: &[f64; 3], b: &[f64; 3], h: f64| -> [f64; 3] {
        std::array::from_fn(|k| (a[k] - b[k]) / h)
    };
    let vel: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(1), (i + 1).min(n - 1));
            diff(&pos[b], &pos[a], (b - a) as f64 * DT)
        })
        .collect();
    let controls: Vec<[f64; 4]> = (0..n - 1)
        .map(|i| {
            let acc = diff(&vel[i + 1], &vel[i], DT);
            let thrust = 0.75 * (acc[0].powi(2) + acc[1].powi(2) + (acc[2] + 9.81).powi(2)).sqrt();
            // Yaw rate of the horizontal velocity, regularised where the flight is vertical.
            let (v, a) = (vel[i], acc);
            let yaw_rate = (v[0] * a[1] - v[1] * a[0]) / (v[0] * v[0] + v[1] * v[1] + 4.0);
            [
                thrust.min(40.0),
                0.3 * a[1].clamp(-30.0, 30.0) / 9.81,
                -0.3 * a[0].clamp(-30.0, 30.0) / 9.81,
                yaw_rate,
            ]
        })
        .collect();
    Trajectory {
        dt: DT,
        pos,
        vel,
        controls,
    }
}

/// Checks the PNG signature and the IHDR size, and that the picture is not blank: many colours
/// and a good share of non-white pixels.
fn check_png(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), size, "{}", path.display());
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );

    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let total = (img.width() * img.height()) as usize;
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        non_white * 50 > total,
        "{}: only {non_white} of {total} pixels drawn",
        path.display()
    );
    assert!(
        colours.len() > 100,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
}

#[test]
fn all_plots_of_a_flight_through_zurich() {
    let track = Track::builtin("zurich").unwrap();
    let traj = synthetic_flight(&track);
    assert!(traj.pos.len() > 300);
    let dir = temp_dir("flight");

    let top = dir.join("top_down.png");
    top_down_png(&top, &track, &traj, "zurich: synthetic lap (top view)").unwrap();
    check_png(&top, (1000, 900));

    let view = dir.join("view_3d.png");
    view_3d_png(&view, &track, &traj, "zurich: synthetic lap (3-D)").unwrap();
    check_png(&view, (1000, 800));

    let states = dir.join("states.png");
    states_controls_png(&states, &traj, "zurich: states and controls").unwrap();
    check_png(&states, (1000, 1000));

    let curves = dir.join("curves.png");
    let steps = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
        (0..=200)
            .map(|i| i as f64 * 25_000.0)
            .map(|x| (x, f(x)))
            .collect()
    };
    let mut reward = steps(&|x| 40.0 * (1.0 - (-x / 1.5e6).exp()) + 3.0 * (x / 1e5).sin());
    reward[17].1 = f64::NAN;
    let series = vec![
        ("Episode return".to_string(), "return".to_string(), reward),
        (
            "Lap time".to_string(),
            "lap time [s]".to_string(),
            steps(&|x| 9.0 + 6.0 * (-x / 1e6).exp()),
        ),
        (
            "Critic loss".to_string(),
            "loss".to_string(),
            steps(&|x| (2.0 * (-x / 7e5).exp()).max(0.05)),
        ),
    ];
    curves_png(&curves, "training", &series).unwrap();
    check_png(&curves, (1000, 70 + 3 * 280));

    if let Ok(keep) = std::env::var("RACING_PLOT_EXAMPLES") {
        std::fs::create_dir_all(&keep).unwrap();
        for p in [&top, &view, &states, &curves] {
            std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn degenerate_inputs_draw_or_name_the_problem() {
    let track = Track::builtin("zurich").unwrap();
    let dir = temp_dir("degenerate");
    let out = |name: &str| dir.join(name);

    // No flight: the track alone.
    let empty = Trajectory {
        dt: DT,
        ..Default::default()
    };
    top_down_png(&out("empty_top.png"), &track, &empty, "track only").unwrap();
    view_3d_png(&out("empty_3d.png"), &track, &empty, "track only").unwrap();
    assert!(matches!(
        states_controls_png(&out("empty_states.png"), &empty, "x"),
        Err(PlotError::Invalid(_))
    ));

    // One sample, and a hover (zero speed range), and a NaN in the middle of a flight.
    let one = Trajectory {
        dt: DT,
        pos: vec![[0.0, 0.0, 1.0]],
        ..Default::default()
    };
    let hover = Trajectory {
        dt: DT,
        pos: vec![[1.0, 2.0, 1.5]; 50],
        controls: vec![[7.4, 0.0, 0.0, 0.0]; 49],
        ..Default::default()
    };
    let mut broken = Trajectory {
        dt: DT,
        pos: (0..100).map(|i| [i as f64 * 0.1, 0.0, 1.0]).collect(),
        ..Default::default()
    };
    broken.pos[40] = [f64::NAN, 0.0, 1.0];
    for (name, t) in [("one", &one), ("hover", &hover), ("broken", &broken)] {
        top_down_png(&out(&format!("{name}_top.png")), &track, t, name).unwrap();
        view_3d_png(&out(&format!("{name}_3d.png")), &track, t, name).unwrap();
        states_controls_png(&out(&format!("{name}_states.png")), t, name).unwrap();
    }

    // An empty track and an empty flight still make a picture.
    let nothing = Track {
        id: "none".into(),
        start: None,
        gates: vec![],
    };
    top_down_png(&out("nothing_top.png"), &nothing, &empty, "nothing").unwrap();
    view_3d_png(&out("nothing_3d.png"), &nothing, &empty, "nothing").unwrap();

    // Inconsistent lengths and bad dt are named.
    let bad_vel = Trajectory {
        dt: DT,
        pos: vec![[0.0; 3]; 3],
        vel: vec![[0.0; 3]; 2],
        ..Default::default()
    };
    let err = top_down_png(&out("bad_top.png"), &track, &bad_vel, "bad").unwrap_err();
    assert!(
        err.to_string().contains("3 positions but 2 velocities"),
        "{err}"
    );
    let bad_dt = Trajectory {
        dt: 0.0,
        pos: vec![[0.0; 3]; 3],
        ..Default::default()
    };
    assert!(matches!(
        states_controls_png(&out("bad_states.png"), &bad_dt, "bad"),
        Err(PlotError::Invalid(_))
    ));

    // Curves: empty list is an error; an all-NaN or empty panel and a single point are drawn.
    assert!(matches!(
        curves_png(&out("no_curves.png"), "none", &[]),
        Err(PlotError::Invalid(_))
    ));
    let series = vec![
        (
            "all NaN".to_string(),
            "y".to_string(),
            vec![(0.0, f64::NAN), (f64::NAN, 1.0)],
        ),
        ("empty".to_string(), "y".to_string(), vec![]),
        ("single".to_string(), "y".to_string(), vec![(1000.0, 2.0)]),
        (
            "two".to_string(),
            "y".to_string(),
            vec![(0.0, 1.0), (2000.0, 3.0)],
        ),
    ];
    curves_png(&out("odd_curves.png"), "odd", &series).unwrap();
    let single = vec![("single".to_string(), "y".to_string(), vec![(5.0, 2.0)])];
    curves_png(&out("single_curve.png"), "single", &single).unwrap();

    // A missing directory is an I/O error naming the path.
    let missing = dir.join("no/such/dir/top.png");
    let err = top_down_png(&missing, &track, &one, "x").unwrap_err();
    assert!(
        matches!(err, PlotError::Io { .. }) && err.to_string().contains("no/such/dir"),
        "{err}"
    );

    if let Ok(keep) = std::env::var("RACING_PLOT_EXAMPLES") {
        let keep = Path::new(&keep).join("degenerate");
        std::fs::create_dir_all(&keep).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, keep.join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
