"""The paper's theory (section 2.3, appendices A-C): interpolation vs extrapolation bounds, the Figure 2
fit, the same picture for any scaling method, and h_j measured on a real model."""

from .bounds import (
    B,
    B0_over_d,
    B_over_d,
    B_theta,
    bound_ratio,
    extrapolation_bound,
    interpolation_bound,
    interpolation_bound_corrected,
    interpolation_bound_corrected_worst,
    interpolation_bound_worst,
    ratio_lower_bound,
    ratio_lower_bound_corrected,
    theta_square_sum,
    triangle_bound,
)
from .fit import RopeFit, figure2_experiment, fit_random, rope_features
from .generalised import angle_coverage, effective_angles, effective_positions, regime, scaled_theta
from .model import capture_qk, complex_pairs, h_coefficients, max_abs_h, scores

__all__ = [
    "B",
    "B0_over_d",
    "B_over_d",
    "B_theta",
    "RopeFit",
    "angle_coverage",
    "bound_ratio",
    "capture_qk",
    "complex_pairs",
    "effective_angles",
    "effective_positions",
    "extrapolation_bound",
    "figure2_experiment",
    "fit_random",
    "h_coefficients",
    "interpolation_bound",
    "interpolation_bound_corrected",
    "interpolation_bound_corrected_worst",
    "interpolation_bound_worst",
    "max_abs_h",
    "ratio_lower_bound",
    "ratio_lower_bound_corrected",
    "regime",
    "rope_features",
    "scaled_theta",
    "scores",
    "theta_square_sum",
    "triangle_bound",
]
