"""Formal proofs (SymbiYosys from pip): generators of Verilog + .sby files and their runner."""
