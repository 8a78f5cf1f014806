#!/usr/bin/perl
# Runs sjdy521/Mojo-Webqq (a SmartQQ client of 2016-2019, from a checkout given on the
# command line) against qqsim, changing nothing in the client but where its host names
# lead: Mojo::UserAgent connects to qqsim over plain http on loopback for every *.qq.com
# host, with the Host header, Referer, Origin, cookies and body as the client made them
# (like a hosts file plus a TLS-terminating proxy). Any other host is refused.
#
# usage: perl mojo_hosts.pl CHECKOUT SIM_URL WORK_DIR
use strict;
use warnings;

my ($checkout, $sim, $work);
BEGIN {
    ($checkout, $sim, $work) = @ARGV;
    die "usage: mojo_hosts.pl CHECKOUT SIM_URL WORK_DIR\n" unless $work;
    unshift @INC, "$checkout/lib";
    # Mojolicious 9 lacks Mojo::IOLoop::Delay; the stand-in comes after Debian's own.
    require File::Basename;
    push @INC, File::Basename::dirname(__FILE__) . "/mojo-compat";
}
my ($sim_host, $sim_port) = $sim =~ m{^http://(127\.0\.0\.1|localhost):(\d+)/?$}
    or die "mojo_hosts: qqsim must be http on loopback, got $sim\n";

use Mojo::UserAgent::Transactor;
{
    no warnings 'redefine';
    my $to_sim = sub {
        my ($self, $tx) = @_;
        my $host = lc($tx->req->url->ihost // '');
        return ('http', $sim_host, $sim_port) if $host eq 'qq.com' || $host =~ /\.qq\.com\z/;
        return ('http', '127.0.0.1', 1);    # refused: the client never leaves the machine
    };
    *Mojo::UserAgent::Transactor::endpoint = $to_sim;
    *Mojo::UserAgent::Transactor::peer     = $to_sim;
}

use Mojo::Webqq;
use Mojo::JSON qw(to_json);

my $client = Mojo::Webqq->new(
    log_level => 'debug',
    tmpdir    => $work,
    account   => 'qqsim',
);
my $listed = 0;
$client->on(state_change => sub {
    my ($client, $old, $new) = @_;
    return if $listed || $new ne 'running';
    $listed = 1;
    my %out = (
        buddy   => [map { $_->displayname } $client->friends],
        group   => [map { $_->displayname } $client->groups],
        discuss => [map { $_->displayname } $client->discusss],
    );
    open my $fh, '>', "$work/contacts.json.tmp" or die $!;
    print $fh to_json(\%out);    # the names are UTF-8 bytes already
    close $fh;
    rename "$work/contacts.json.tmp", "$work/contacts.json";
});
$client->on(receive_message => sub {
    my ($client, $msg) = @_;
    $msg->reply('pong ' . $msg->content) if $msg->content =~ /^ping/;
});
$client->run();
