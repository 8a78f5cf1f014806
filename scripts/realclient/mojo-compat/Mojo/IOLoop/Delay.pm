# A stand-in for Mojo::IOLoop::Delay, which Mojolicious 9 no longer ships and
# Mojo-Webqq still uses (Client.pm's steps). Written for this script from the module's
# documented behaviour: run the steps in order, each with the values its callbacks
# (begin) collected; an exception or the last step ends the chain. An interpreter
# shim, not a change to the client.
package Mojo::IOLoop::Delay;
use Mojo::Base 'Mojo::EventEmitter';
use Mojo::IOLoop;

has ioloop => sub { Mojo::IOLoop->singleton };

sub steps {
    my ($self, @steps) = @_;
    $self->{steps} = [@steps];
    $self->{index} = 0;
    $self->ioloop->next_tick(sub { $self->_run() });
    return $self;
}

sub catch { my ($self, $cb) = @_; $self->on(error => $cb); return $self }

sub begin {
    my ($self, $offset, $len) = @_;
    $offset //= 1;
    my $slot = $self->{pending}++;
    my $gen  = $self->{gen};
    return sub {
        return if ($self->{gen} // -1) != $gen || $self->{fail};
        my @args = @_;
        $self->{args}[$slot] = [defined $len ? splice(@args, $offset, $len) : splice(@args, $offset)];
        $self->_run(@{delete($self->{next_args}) // []}) if --$self->{pending} == 0 && $self->{returned};
    };
}

sub _run {
    my ($self) = @_;
    my @args = map {@$_} @{delete($self->{args}) // []};
    my $step = $self->{steps}[$self->{index}++];
    unless ($step) { $self->emit('finish', @args); return }
    $self->{gen}++;
    $self->{pending}  = 0;
    $self->{returned} = 0;
    $self->{args}     = [];
    eval { $step->($self, @args); 1 } or do {
        $self->{fail} = 1;
        $self->emit(error => $@);
        return;
    };
    $self->{returned} = 1;
    $self->ioloop->next_tick(sub { $self->_run() }) if $self->{pending} == 0;
}

sub wait {
    my $self = shift;
    return $self if $self->ioloop->is_running;
    $self->once(error  => sub { shift->ioloop->stop });
    $self->once(finish => sub { shift->ioloop->stop });
    $self->ioloop->start;
    return $self;
}

1;
