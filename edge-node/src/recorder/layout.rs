//! Where each source goes in the 1280x720 program, for a scene and layout.
//! Pure: the composer applies the result to compositor pads.

use protocol::event::{Layout, Scene};

pub const WIDTH: i32 = 1280;
pub const HEIGHT: i32 = 720;

/// A source of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A camera, by slot (0 = the presenter).
    Camera(u8),
    Screen,
    Slide,
    Whiteboard,
}

/// A pad's geometry: position, size, opacity, stacking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub alpha: f64,
    /// Stacking as the layout intends it; the pipeline stacks sources in a
    /// fixed order that agrees with every layout (cameras over content).
    pub zorder: u32,
}

impl Place {
    const HIDDEN: Place = Place {
        x: 0,
        y: 0,
        w: 16,
        h: 16,
        alpha: 0.0,
        zorder: 0,
    };
    const fn full(z: u32) -> Place {
        Place {
            x: 0,
            y: 0,
            w: WIDTH,
            h: HEIGHT,
            alpha: 1.0,
            zorder: z,
        }
    }
    const fn at(x: i32, y: i32, w: i32, h: i32, z: u32) -> Place {
        Place {
            x,
            y,
            w,
            h,
            alpha: 1.0,
            zorder: z,
        }
    }
}

/// What the composer has to work with right now.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Camera slots that carry video (presenter first).
    pub cameras: Vec<u8>,
    pub screen: bool,
    pub slide: bool,
}

/// The picture-in-picture corner for the presenter's camera.
const PIP: Place = Place::at(WIDTH - 320 - 16, HEIGHT - 180 - 16, 320, 180, 10);

/// Places every source; sources not shown are hidden.
pub fn places(
    scene: Scene,
    layout: Layout,
    inputs: &Inputs,
    all: &[Source],
) -> Vec<(Source, Place)> {
    let presenter = inputs.cameras.first().copied();
    let content = |s: Source| match scene {
        Scene::Slides => s == Source::Slide,
        Scene::Screen => s == Source::Screen,
        Scene::Whiteboard => s == Source::Whiteboard,
        Scene::Split => {
            if inputs.screen {
                s == Source::Screen
            } else {
                s == Source::Slide
            }
        }
        Scene::Camera => false,
    };
    all.iter()
        .map(|&s| {
            let place = match (scene, s) {
                // camera scene: the presenter full frame, or everyone in a grid
                (Scene::Camera, Source::Camera(slot)) => match layout {
                    Layout::Grid if inputs.cameras.len() > 1 => {
                        grid(inputs.cameras.iter().position(|c| *c == slot))
                    }
                    Layout::Grid | Layout::Speaker | Layout::Pip | Layout::SideBySide => {
                        if Some(slot) == presenter {
                            Place::full(1)
                        } else {
                            Place::HIDDEN
                        }
                    }
                },
                (Scene::Camera, _) => Place::HIDDEN,
                // split: content left, presenter right
                (Scene::Split, Source::Camera(slot)) => {
                    if Some(slot) == presenter {
                        Place::at(WIDTH / 2, HEIGHT / 4, WIDTH / 2, HEIGHT / 2, 1)
                    } else {
                        Place::HIDDEN
                    }
                }
                (Scene::Split, other) if content(other) => {
                    Place::at(0, HEIGHT / 4, WIDTH / 2, HEIGHT / 2, 1)
                }
                // content scenes: content full; the presenter in a corner or beside it
                (_, Source::Camera(slot)) => {
                    if Some(slot) != presenter {
                        Place::HIDDEN
                    } else {
                        match layout {
                            Layout::SideBySide => {
                                Place::at(WIDTH * 2 / 3, HEIGHT / 3, WIDTH / 3, HEIGHT / 3, 1)
                            }
                            Layout::Speaker | Layout::Grid | Layout::Pip => PIP,
                        }
                    }
                }
                (_, other) if content(other) => match layout {
                    Layout::SideBySide => {
                        Place::at(0, HEIGHT / 6, WIDTH * 2 / 3, HEIGHT * 2 / 3, 1)
                    }
                    Layout::Speaker | Layout::Grid | Layout::Pip => Place::full(1),
                },
                (_, _) => Place::HIDDEN,
            };
            (s, place)
        })
        .collect()
}

/// Cell `i` of a 2x2 grid.
fn grid(i: Option<usize>) -> Place {
    let Some(i) = i else { return Place::HIDDEN };
    if i > 3 {
        return Place::HIDDEN;
    }
    let (w, h) = (WIDTH / 2, HEIGHT / 2);
    Place::at((i as i32 % 2) * w, (i as i32 / 2) * h, w, h, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Source; 5] = [
        Source::Camera(0),
        Source::Camera(1),
        Source::Screen,
        Source::Slide,
        Source::Whiteboard,
    ];

    fn shown(scene: Scene, layout: Layout, inputs: &Inputs) -> Vec<(Source, (i32, i32, i32, i32))> {
        places(scene, layout, inputs, &ALL)
            .into_iter()
            .filter(|(_, p)| p.alpha > 0.0)
            .map(|(s, p)| (s, (p.x, p.y, p.w, p.h)))
            .collect()
    }

    #[test]
    fn scenes_place_their_sources() {
        let two = Inputs {
            cameras: vec![0, 1],
            screen: true,
            slide: true,
        };
        assert_eq!(
            shown(Scene::Camera, Layout::Speaker, &two),
            vec![(Source::Camera(0), (0, 0, 1280, 720))]
        );
        assert_eq!(
            shown(Scene::Camera, Layout::Grid, &two).len(),
            2,
            "grid shows every camera"
        );
        assert_eq!(
            shown(Scene::Slides, Layout::Pip, &two),
            vec![
                (Source::Camera(0), (944, 524, 320, 180)),
                (Source::Slide, (0, 0, 1280, 720))
            ]
        );
        assert_eq!(
            shown(Scene::Whiteboard, Layout::Speaker, &two),
            vec![
                (Source::Camera(0), (944, 524, 320, 180)),
                (Source::Whiteboard, (0, 0, 1280, 720))
            ]
        );
        let split = shown(Scene::Split, Layout::Speaker, &two);
        assert!(
            split.contains(&(Source::Screen, (0, 180, 640, 360))),
            "split prefers a screen share"
        );
        let no_screen = Inputs {
            cameras: vec![0],
            screen: false,
            slide: true,
        };
        assert!(
            shown(Scene::Split, Layout::Speaker, &no_screen)
                .contains(&(Source::Slide, (0, 180, 640, 360)))
        );
        // with no camera at all the content is still shown
        let none = Inputs {
            cameras: vec![],
            screen: false,
            slide: true,
        };
        assert_eq!(
            shown(Scene::Slides, Layout::Pip, &none),
            vec![(Source::Slide, (0, 0, 1280, 720))]
        );
    }

    #[test]
    fn the_content_always_sits_under_the_presenter() {
        let i = Inputs {
            cameras: vec![0],
            screen: true,
            slide: true,
        };
        for scene in [Scene::Slides, Scene::Screen, Scene::Whiteboard] {
            let p = places(scene, Layout::Pip, &i, &ALL);
            let cam = p.iter().find(|(s, _)| *s == Source::Camera(0)).unwrap().1;
            let content = p
                .iter()
                .filter(|(s, _)| !matches!(s, Source::Camera(_)))
                .find(|(_, pl)| pl.alpha > 0.0)
                .unwrap()
                .1;
            assert!(cam.zorder > content.zorder, "{scene:?}");
        }
    }
}
