# Deliveries/s against offered load, one line per server; run by compare.sh with dir=OUT, servers='NAME …'.
set terminal png size 900,540
set output dir.'/deliveries.png'
set title 'Deliveries/s against offered load (1,000 subscribers, room mix 60/30/10)'
set xlabel 'offered deliveries/s (publish rate x mean fan-out)'
set ylabel 'deliveries/s'
set logscale x
set key top left
set grid
plot for [s in servers] dir.'/'.s.'.dat' using 1:2 with linespoints title s
