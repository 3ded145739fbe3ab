# Perl twin of docs/examples/hello.py for bench/hotdeploy.py: names the pid and the generation.
my $app = sub {
    my $gen = $ENV{SERVER_STARTER_GENERATION} // '-';
    my $body = "Hello World from pid $$ (generation $gen)\n";
    return [200, ['Content-Type' => 'text/plain; charset=utf-8',
                  'Content-Length' => length($body)], [$body]];
};
$app;
