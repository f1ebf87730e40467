//! Sources of deliveries. (written by the engine author)
