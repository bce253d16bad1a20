// The event stream of one VM handle, shared by the drivers: queues VmEvents from the driver's threads and delivers them
// to the subscribers on one loop, so that every driver keeps the rules IVmHandle.Subscribe promises.
using System.Threading.Channels;

namespace Orchestrator.Hypervisor;

/// <summary>
/// Delivers a VM's events, in the order they were published, to every subscriber on one dispatch loop. Events wait
/// until the first subscriber comes (even when the VM has ended by then), so it misses nothing, the banner included;
/// a later subscriber gets what is published after it joined. <see cref="VmEvent.Exited"/> is the last event and goes
/// out once: after <see cref="End"/> nothing more is queued. A subscriber that throws costs only its own delivery.
/// </summary>
internal sealed class VmEventChannel
{
    private readonly Channel<VmEvent> _events = Channel.CreateUnbounded<VmEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<Action<VmEvent>> _subscribers = [];
    private readonly CancellationTokenSource _detach = new();
    private readonly object _writeLock = new(); // an event written and Exited's completion of the channel never interleave
    private Task _dispatcher = Task.CompletedTask;

    /// <summary>
    /// The dispatch loop: completes once Exited has been delivered, or soon after <see cref="Detach"/>. Complete while
    /// nobody has subscribed, since nothing is being delivered then.
    /// </summary>
    public Task Delivery
    {
        get
        {
            lock (_subscribers)
            {
                return _dispatcher;
            }
        }
    }

    public void Subscribe(Action<VmEvent> onEvent)
    {
        lock (_subscribers)
        {
            _subscribers.Add(onEvent);

            // Delivery starts with the first subscriber: until then events queue up in the channel.
            if (_subscribers.Count == 1)
            {
                _dispatcher = Task.Run(DispatchAsync, CancellationToken.None);
            }
        }
    }

    /// <summary>Queues an event; false once the stream has ended or been detached, when it is dropped.</summary>
    public bool Publish(VmEvent vmEvent)
    {
        if (vmEvent is VmEvent.Exited)
        {
            throw new ArgumentException("Exited ends the stream: use End", nameof(vmEvent));
        }

        lock (_writeLock)
        {
            return _events.Writer.TryWrite(vmEvent);
        }
    }

    /// <summary>Queues <see cref="VmEvent.Exited"/> as the last event; false (and nothing queued) if already ended or detached.</summary>
    public bool End(string reason)
    {
        lock (_writeLock)
        {
            return _events.Writer.TryWrite(new VmEvent.Exited(reason)) && _events.Writer.TryComplete();
        }
    }

    /// <summary>
    /// Lets go of the VM without ending it: nothing more is queued, no Exited is sent, and delivery stops the next time
    /// the loop waits for events (a batch it is delivering still goes out; the rest is dropped).
    /// </summary>
    public void Detach()
    {
        lock (_writeLock)
        {
            _detach.Cancel();
            _events.Writer.TryComplete();
        }
    }

    private async Task DispatchAsync()
    {
        try
        {
            await foreach (var vmEvent in _events.Reader.ReadAllAsync(_detach.Token))
            {
                Action<VmEvent>[] subscribers;
                lock (_subscribers)
                {
                    subscribers = [.. _subscribers];
                }

                foreach (var subscriber in subscribers)
                {
                    try
                    {
                        subscriber(vmEvent);
                    }
                    catch (Exception)
                    {
                        // One faulty subscriber must not starve the others or stop the stream.
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Detached.
        }
    }
}
