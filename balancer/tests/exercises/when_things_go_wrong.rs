//! The exercise of the chapter "lb — when things go wrong".
