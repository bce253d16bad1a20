using System.Threading.Channels;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Consoles;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Tests;

/// <summary>A console session between a scripted console actor (a probe) and a client that reads, or does not.</summary>
public class ConsoleSessionTests() : TestKit(TestConfig.Serialization())
{
    private static readonly VmId Vm = new(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e"));
    private static readonly ConsoleCommands.Attach Attach = new(new TenantId("acme"), "web1", CanWrite: true, Force: false);

    [Fact]
    public async Task A_client_that_stops_reading_loses_output_past_its_buffer_and_is_told_how_much()
    {
        var (session, console, frames, _) = await AttachedAsync();

        var chunk = new byte[1000];
        for (var i = 0; i < ConsoleSessionActor.ClientBuffer * 4; i++)
        {
            session.Tell(new ConsoleReplies.Output(chunk), console.Ref);
        }

        // The session handles its mail in order: once it passes these keystrokes on, it has handled every chunk.
        session.Tell(new ConsoleSessionActor.Typed("x"u8.ToArray()));
        await console.ExpectMsgAsync<ConsoleCommands.Input>();
        Assert.Equal(ConsoleSessionActor.ClientBuffer, frames.Reader.Count);
        var buffered = new List<ConsoleFrame>();
        while (frames.Reader.TryRead(out var frame))
        {
            buffered.Add(frame);
        }

        session.Tell(new ConsoleReplies.Output("after"u8.ToArray()), console.Ref);
        var notice = Assert.IsType<ConsoleFrame.Notice>(await frames.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        var resumed = Assert.IsType<ConsoleFrame.Bytes>(await frames.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5)));

        Assert.Equal("dropped", notice.Kind);
        var kept = buffered.OfType<ConsoleFrame.Bytes>().Count(b => b.Data.Length == chunk.Length);
        Assert.Contains($"{(ConsoleSessionActor.ClientBuffer * 4 - kept) * chunk.Length} bytes", notice.Message);
        Assert.Equal("after"u8.ToArray(), resumed.Data);
    }

    [Fact]
    public async Task Keystrokes_go_to_the_console_that_attached_and_its_end_ends_the_session()
    {
        var (session, console, frames, outcome) = await AttachedAsync();
        Assert.True(outcome.Writing);

        session.Tell(new ConsoleSessionActor.Typed("ls\r"u8.ToArray()));
        Assert.Equal("ls\r"u8.ToArray(), (await console.ExpectMsgAsync<ConsoleCommands.Input>()).Data);

        Watch(session);
        Sys.Stop(console.Ref);
        await ExpectTerminatedAsync(session);
        ConsoleFrame? last = null;
        await foreach (var frame in frames.Reader.ReadAllAsync())
        {
            last = frame;
        }

        Assert.Equal("ended", Assert.IsType<ConsoleFrame.Notice>(last).Kind);
    }

    [Fact]
    public async Task A_refused_attach_says_why_and_ends_the_session()
    {
        var scheduler = CreateTestProbe();
        var frames = Channel.CreateBounded<ConsoleFrame>(ConsoleSessionActor.ClientBuffer);
        var outcome = new TaskCompletionSource<ConsoleAttachOutcome>();
        var session = Sys.ActorOf(ConsoleSessionActor.Props(scheduler.Ref, Attach, frames.Writer, outcome));
        Watch(session);

        await scheduler.ExpectMsgAsync<ConsoleCommands.Attach>();
        scheduler.Reply(new ConsoleReplies.Refused(true, "no VM named 'web1'"));

        var refused = await outcome.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(refused.NotFound);
        Assert.Null(refused.VmId);
        await ExpectTerminatedAsync(session);
    }

    private async Task<(IActorRef Session, Akka.TestKit.TestProbe Console, Channel<ConsoleFrame> Frames, ConsoleAttachOutcome Outcome)> AttachedAsync()
    {
        var scheduler = CreateTestProbe();
        var console = CreateTestProbe();
        var frames = Channel.CreateBounded<ConsoleFrame>(ConsoleSessionActor.ClientBuffer);
        var outcome = new TaskCompletionSource<ConsoleAttachOutcome>();
        var session = Sys.ActorOf(ConsoleSessionActor.Props(scheduler.Ref, Attach, frames.Writer, outcome));

        await scheduler.ExpectMsgAsync<ConsoleCommands.Attach>();
        // The VM's console actor answers the session directly: it becomes the session's console.
        session.Tell(new ConsoleReplies.Attached(Vm, true, null, "scrollback"u8.ToArray()), console.Ref);
        var attached = await outcome.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("attached", Assert.IsType<ConsoleFrame.Notice>(await frames.Reader.ReadAsync()).Kind);
        Assert.Equal("scrollback"u8.ToArray(), Assert.IsType<ConsoleFrame.Bytes>(await frames.Reader.ReadAsync()).Data);
        return (session, console, frames, attached);
    }
}
