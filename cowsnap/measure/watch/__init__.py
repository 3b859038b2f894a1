"""What `cowsnap watch` measures of a running program: /proc readers
(proc), the tracker of its processes, threads and intervals (tracker), and
a watch point of a sweep (point). The command is cowsnap.watch_cli; its
verdict and display live in cowsnap.analyse.watch."""
