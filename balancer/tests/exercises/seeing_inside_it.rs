//! The exercise of the chapter "lb — seeing inside it".
