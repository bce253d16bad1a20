using System.Threading.Channels;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Group commit for the journal writers: one loop owns one connection to the store; everything queued while a batch is
/// being committed goes into the next, so a burst costs one commit however many writers wait in it. Each caller's task
/// completes once its rows are committed, or fails with the reason (and then none of its batch is written). A batch
/// that fails drops the connection; the next batch opens a fresh one.
/// </summary>
/// <typeparam name="TConnection">the store's connection with what it keeps prepared for every batch.</typeparam>
public abstract class GroupCommitWriter<TConnection> : IJournalRowWriter
    where TConnection : class, IAsyncDisposable
{
    private readonly Channel<PendingWrite> _queue = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly string _store;
    private readonly Task _loop;

    /// <param name="store">the store's name, for the error a write after stopping gets.</param>
    protected GroupCommitWriter(string store)
    {
        _store = store;
        // The loop touches the subclass (OpenAsync …) only for a write, and no write can come before its constructor ends.
        _loop = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>One caller's rows and the task it waits on.</summary>
    public sealed record PendingWrite(IReadOnlyList<JournalEntry> Entries, TaskCompletionSource Done);

    /// <summary>Opens the connection (checking the tables it writes) and prepares what every batch reuses.</summary>
    protected abstract Task<TConnection> OpenAsync();

    /// <summary>Writes the whole batch in one transaction: all of it is committed, or it throws and none of it is.</summary>
    protected abstract Task CommitAsync(TConnection connection, IReadOnlyList<PendingWrite> batch);

    /// <summary>After each committed batch, on the loop (SQLite checkpoints here).</summary>
    protected virtual void AfterCommit(TConnection connection)
    {
    }

    /// <summary>When the loop stops with the connection still open, before it is closed.</summary>
    protected virtual void BeforeClose(TConnection connection)
    {
    }

    /// <summary>Completes once every entry is committed; an empty batch completes at once.</summary>
    public Task WriteAsync(IReadOnlyList<JournalEntry> entries)
    {
        if (entries.Count == 0)
        {
            return Task.CompletedTask;
        }

        // Continuations run on the loop's thread as it completes the batch: what waits on a write is the journal's
        // reply (a few messages told), and a hop through the thread pool would add a thread's wake-up to every request.
        var pending = new PendingWrite(entries, new TaskCompletionSource());
        return _queue.Writer.TryWrite(pending) ? pending.Done.Task : Task.FromException(Stopped());
    }

    /// <summary>
    /// Stops taking writes, and waits (30 s at most) for those already queued. Called from a write's continuation (which
    /// runs on the loop as it completes the batch) it does not wait: the loop could not go on until it returned, and it
    /// ends by itself once the continuation has.
    /// </summary>
    public virtual void Dispose()
    {
        _queue.Writer.TryComplete();
        if (!ReferenceEquals(t_completing, this))
        {
            _loop.Wait(TimeSpan.FromSeconds(30));
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>The writer whose loop is completing writes on this thread (their continuations run inline).</summary>
    [ThreadStatic]
    private static GroupCommitWriter<TConnection>? t_completing;

    private void Complete(List<PendingWrite> batch, Exception? failure)
    {
        t_completing = this;
        try
        {
            foreach (var pending in batch)
            {
                _ = failure is null ? pending.Done.TrySetResult() : pending.Done.TrySetException(failure);
            }
        }
        finally
        {
            t_completing = null;
        }
    }

    private InvalidOperationException Stopped() => new($"the {_store} journal writer is stopped");

    private async Task RunAsync()
    {
        TConnection? connection = null;
        var batch = new List<PendingWrite>();
        try
        {
            while (await _queue.Reader.WaitToReadAsync())
            {
                batch.Clear();
                var rows = 0;
                while (_queue.Reader.TryRead(out var pending))
                {
                    batch.Add(pending);
                    rows += pending.Entries.Count;
                }

                try
                {
                    connection ??= await OpenAsync();
                    await CommitAsync(connection, batch);
                    OrchestratorMetrics.JournalBatchSize.Record(rows);
                    Complete(batch, failure: null);
                }
                catch (Exception ex)
                {
                    // The transaction rolled back: nothing of this batch is in the journal. A broken connection is
                    // opened afresh for the next batch.
                    if (connection is not null)
                    {
                        await connection.DisposeAsync();
                        connection = null;
                    }

                    Complete(batch, ex);
                }

                if (connection is not null)
                {
                    AfterCommit(connection);
                }
            }
        }
        finally
        {
            // Stopped (or, were it ever to happen, broken): later writes fail at once instead of waiting forever.
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var left))
            {
                left.Done.TrySetException(Stopped());
            }

            if (connection is not null)
            {
                BeforeClose(connection);
                await connection.DisposeAsync();
            }
        }
    }
}
