"""Trajectory analysis: transport (MSD → D → σ, Arrhenius) and structure descriptors.

Modules: :mod:`~mtpkit.analysis.trajectory` (streaming LAMMPS dump / extxyz readers),
:mod:`~mtpkit.analysis.transport` (replica-averaged D, σ via pymatgen-analysis-diffusion),
:mod:`~mtpkit.analysis.arrhenius` (one/two-regime fits, extrapolation),
:mod:`~mtpkit.analysis.analyze` (the whole analysis: :class:`~mtpkit.analysis.analyze.TransportAnalysis`
per system, :func:`~mtpkit.analysis.analyze.analyze_runs`), :mod:`~mtpkit.analysis.writers` (its
results.json/md, CSV and plot files), :mod:`~mtpkit.analysis.runs`
(runs of an MD sweep), :mod:`~mtpkit.structures.sro` (Warren–Cowley SRO),
:mod:`~mtpkit.analysis.sites` (Na octahedral/prismatic sites, O_oct),
:mod:`~mtpkit.analysis.octahedra` (Cl angular displacement), :mod:`~mtpkit.analysis.descriptors`,
:mod:`~mtpkit.analysis.plots`.
"""
