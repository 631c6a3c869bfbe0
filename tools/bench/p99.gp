# p99 end-to-end latency against offered load, one line per server; run by compare.sh.
set terminal png size 900,540
set output dir.'/p99.png'
set title 'p99 latency against offered load (1,000 subscribers, room mix 60/30/10)'
set xlabel 'offered deliveries/s (publish rate x mean fan-out)'
set ylabel 'p99 latency (ms)'
set logscale xy
set key top left
set grid
plot for [s in servers] dir.'/'.s.'.dat' using 1:3 with linespoints title s
