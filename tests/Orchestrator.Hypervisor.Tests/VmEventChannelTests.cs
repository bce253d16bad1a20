// The rules every driver's event stream keeps (IVmHandle.Subscribe), tested on the shared channel without a VM.
namespace Orchestrator.Hypervisor.Tests;

public sealed class VmEventChannelTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Events_wait_for_the_first_subscriber_even_after_the_vm_ended()
    {
        var channel = new VmEventChannel();
        channel.Publish(new VmEvent.ConsoleLine("banner"));
        channel.Publish(new VmEvent.Shutdown(true, "guest-shutdown"));
        channel.End("guest shut down");
        Assert.True(channel.Delivery.IsCompleted, "nothing is delivered while nobody listens");

        var received = new List<VmEvent>();
        channel.Subscribe(received.Add);
        await channel.Delivery.WaitAsync(Bound);

        Assert.Equal(
            [new VmEvent.ConsoleLine("banner"), new VmEvent.Shutdown(true, "guest-shutdown"), new VmEvent.Exited("guest shut down")],
            received);
    }

    [Fact]
    public async Task Exited_is_last_and_nothing_is_queued_after_it()
    {
        var channel = new VmEventChannel();
        var received = new List<VmEvent>();
        channel.Subscribe(received.Add);

        Assert.True(channel.Publish(new VmEvent.Stopped()));
        Assert.True(channel.End("killed"));
        Assert.False(channel.Publish(new VmEvent.Resumed()));
        Assert.False(channel.End("killed again"));
        await channel.Delivery.WaitAsync(Bound);

        Assert.Equal([new VmEvent.Stopped(), new VmEvent.Exited("killed")], received);
    }

    [Fact]
    public void Exited_goes_only_through_End()
    {
        var channel = new VmEventChannel();
        Assert.Throws<ArgumentException>(() => channel.Publish(new VmEvent.Exited("sneaked in")));
    }

    [Fact]
    public async Task Order_is_kept_for_each_publisher_and_Exited_follows_them_all()
    {
        var channel = new VmEventChannel();
        var received = new List<VmEvent>();
        channel.Subscribe(received.Add);

        const int PerPublisher = 2_000;
        var publishers = Enumerable.Range(0, 4).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < PerPublisher; i++)
            {
                channel.Publish(new VmEvent.ConsoleLine($"{p}:{i}"));
            }
        })).ToArray();
        await Task.WhenAll(publishers).WaitAsync(Bound);
        channel.End("done");
        await channel.Delivery.WaitAsync(Bound);

        Assert.Equal(4 * PerPublisher + 1, received.Count);
        Assert.Equal(new VmEvent.Exited("done"), received[^1]);
        foreach (var publisher in Enumerable.Range(0, 4))
        {
            var lines = received.OfType<VmEvent.ConsoleLine>().Where(l => l.Text.StartsWith($"{publisher}:")).Select(l => l.Text);
            Assert.Equal(Enumerable.Range(0, PerPublisher).Select(i => $"{publisher}:{i}"), lines);
        }
    }

    [Fact]
    public async Task A_throwing_subscriber_neither_stops_the_stream_nor_starves_the_others()
    {
        var channel = new VmEventChannel();
        var attempts = 0;
        var received = new List<VmEvent>();
        channel.Subscribe(_ =>
        {
            attempts++;
            throw new InvalidOperationException("a faulty subscriber");
        });
        channel.Subscribe(received.Add);

        channel.Publish(new VmEvent.ConsoleLine("one"));
        channel.Publish(new VmEvent.ConsoleLine("two"));
        channel.End("killed");
        await channel.Delivery.WaitAsync(Bound);

        Assert.Equal(3, attempts);
        Assert.Equal([new VmEvent.ConsoleLine("one"), new VmEvent.ConsoleLine("two"), new VmEvent.Exited("killed")], received);
    }

    [Fact]
    public async Task A_later_subscriber_gets_what_comes_after_it_joined()
    {
        var channel = new VmEventChannel();
        var first = new List<VmEvent>();
        var later = new List<VmEvent>();
        var firstSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.Subscribe(e =>
        {
            first.Add(e);
            firstSeen.TrySetResult();
        });

        channel.Publish(new VmEvent.ConsoleLine("before"));
        await firstSeen.Task.WaitAsync(Bound);
        channel.Subscribe(later.Add);
        channel.End("killed");
        await channel.Delivery.WaitAsync(Bound);

        Assert.Equal([new VmEvent.ConsoleLine("before"), new VmEvent.Exited("killed")], first);
        Assert.Equal([new VmEvent.Exited("killed")], later);
    }

    [Fact]
    public async Task Detach_stops_the_stream_without_an_Exited()
    {
        var channel = new VmEventChannel();
        var received = new List<VmEvent>();
        channel.Subscribe(received.Add);

        channel.Detach();
        Assert.False(channel.Publish(new VmEvent.ConsoleLine("after detach")));
        Assert.False(channel.End("killed"));
        await channel.Delivery.WaitAsync(Bound);

        Assert.Empty(received);
    }

    [Fact]
    public async Task Detach_before_anyone_subscribed_delivers_nothing_to_a_late_subscriber()
    {
        var channel = new VmEventChannel();
        channel.Publish(new VmEvent.ConsoleLine("queued"));
        channel.Detach();

        var received = new List<VmEvent>();
        channel.Subscribe(received.Add);
        await channel.Delivery.WaitAsync(Bound);

        Assert.Empty(received);
    }
}
