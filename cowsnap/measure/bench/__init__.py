"""What the benchmark measures: a point's run on this machine (runner) or
in a VM (vm), through the native wire (wire), the kernel checks that skip a
point (checks), and the benchmark against a plain C program (calibrate)."""
