"""Device profiles (TOML) and the latency profiler.

`load_profile(name_or_path) -> Profile` and `list_profiles()` read the shipped profiles
(`profiles/*.toml`) or a user's file; `profiles.profiler.profile_bundle` measures the runtime
under one (`machine`: where, `latency`, `memory`: the figures, `budgets`: the verdict,
`compare`: several variants, `report`: tables and plots). Never imports torch: this package
runs on the devices it describes.
"""

from profiles.profile import Profile, list_profiles, load_profile

__all__ = ["Profile", "list_profiles", "load_profile"]
