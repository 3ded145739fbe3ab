# Perl twin of post.py: reads the whole body in 64 KB reads and answers its length.
use strict;
use warnings;

sub {
    my $env       = shift;
    my $remaining = $env->{CONTENT_LENGTH} || 0;
    my $input     = $env->{'psgi.input'};
    my $total     = 0;
    while ( $remaining > 0 ) {
        my $want = $remaining < 65536 ? $remaining : 65536;
        my $got  = $input->read( my $buf, $want );
        last unless $got;
        $total     += $got;
        $remaining -= $got;
    }
    return [ 200, [ 'Content-Type' => 'text/plain', 'Content-Length' => length($total) ], [$total] ];
};
