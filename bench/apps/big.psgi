# Perl twin of big.py: 1 MB response in one string with Content-Length.
use strict;
use warnings;

my $body = 'x' x (1 << 20);
sub {
    return [ 200, [ 'Content-Type' => 'application/octet-stream', 'Content-Length' => length($body) ], [$body] ];
};
