"""What `cowsnap watch` measures of a running program: /proc readers
(proc), the tracker of its processes, threads and intervals (tracker).
The command is cowsnap.watch_cli; its verdict and display live in
cowsnap.analyse (verdict, watch_report)."""
