//! The exercise of the chapter "lb — which algorithm".
