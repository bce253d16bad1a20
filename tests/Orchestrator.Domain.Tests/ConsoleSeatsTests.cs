using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class ConsoleSeatsTests
{
    [Fact]
    public void The_first_session_that_may_write_gets_the_keyboard_and_a_second_only_reads()
    {
        var (seats, first) = ConsoleSeats<string>.Empty.Attach("alice", canWrite: true, force: false);
        Assert.Equal(ConsoleRole.Writer, first.Role);

        var (after, second) = seats.Attach("bob", canWrite: true, force: false);

        Assert.Equal(ConsoleRole.Reader, second.Role);
        Assert.Equal(ConsoleSeats<string>.KeyboardTaken, second.Why);
        Assert.True(after.MayWrite("alice"));
        Assert.False(after.MayWrite("bob"));
    }

    [Fact]
    public void Force_takes_the_keyboard_and_names_the_writer_it_was_taken_from()
    {
        var (seats, _) = ConsoleSeats<string>.Empty.Attach("alice", true, false);

        var (after, seat) = seats.Attach("bob", canWrite: true, force: true);

        Assert.Equal(new ConsoleSeat<string>(ConsoleRole.Writer, null, "alice"), seat);
        Assert.True(after.MayWrite("bob"));
        Assert.False(after.MayWrite("alice"));
    }

    [Fact]
    public void A_read_only_key_never_writes_even_with_force_or_an_empty_console()
    {
        var (empty, alone) = ConsoleSeats<string>.Empty.Attach("viewer", canWrite: false, force: false);
        var (held, _) = empty.Attach("alice", true, false);
        var (after, forced) = held.Attach("viewer", canWrite: false, force: true);

        Assert.Equal(ConsoleRole.Reader, alone.Role);
        Assert.Equal(ConsoleSeats<string>.ReadOnlyKey, alone.Why);
        Assert.Equal(ConsoleRole.Reader, forced.Role);
        Assert.Null(forced.Displaced);
        Assert.False(empty.MayWrite("viewer"));
        Assert.True(after.MayWrite("alice"));
    }

    [Fact]
    public void The_keyboard_is_free_once_its_writer_leaves_and_a_reader_leaving_changes_nothing()
    {
        var (seats, _) = ConsoleSeats<string>.Empty.Attach("alice", true, false);

        Assert.True(seats.Detach("bob").MayWrite("alice"));
        var freed = seats.Detach("alice");
        var (_, next) = freed.Attach("bob", true, false);

        Assert.False(freed.MayWrite("alice"));
        Assert.Equal(ConsoleRole.Writer, next.Role);
    }
}
