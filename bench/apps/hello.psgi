# Perl twin of hello_wsgi.py: 200 'Hello World' text/plain with Content-Length.
use strict;
use warnings;

my $body = 'Hello World';
sub {
    return [ 200, [ 'Content-Type' => 'text/plain', 'Content-Length' => length($body) ], [$body] ];
};
