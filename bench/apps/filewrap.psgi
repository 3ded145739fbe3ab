# Perl twin of filewrap.py: returns a filehandle body for the file named by $BENCH_FILE.
use strict;
use warnings;

my $path = $ENV{BENCH_FILE} or die "BENCH_FILE is not set\n";
my $size = -s $path;
sub {
    open my $fh, '<:raw', $path or die "open $path: $!\n";
    return [ 200, [ 'Content-Type' => 'application/octet-stream', 'Content-Length' => $size ], $fh ];
};
