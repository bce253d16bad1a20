// Akka's log events into Microsoft.Extensions.Logging, one entry per event, under the category of the class that logged.
using System.Collections;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Event;
using Akka.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Settings;
using MelLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Orchestrator.Actors.Hosting;

public static class AkkaLoggingExtensions
{
    /// <summary>
    /// Akka logs through <paramref name="loggerFactory"/> only (no console logger of its own), at the most verbose level
    /// any category is configured at: MEL then applies each category's level, so Akka's lines and the node's are one
    /// stream in one format. Akka's stdout logger (used before the loggers start and after they stop) writes into the
    /// same factory, so nothing reaches the console in Akka's own format.
    /// </summary>
    public static AkkaConfigurationBuilder AddOrchestratorLogging(
        this AkkaConfigurationBuilder builder, LoggingSettings settings, ILoggerFactory loggerFactory)
    {
        builder.AddSetup(new MelLoggerSetup(loggerFactory));
        MelStdoutLogger.Use(loggerFactory);
        builder.AddHocon($"akka.stdout-logger-class = \"{typeof(MelStdoutLogger).AssemblyQualifiedName}\"", HoconAddMode.Prepend);
        return builder.ConfigureLoggers(loggers =>
        {
            loggers.LogLevel = Logging.LogLevelFor(settings.AkkaLogLevel == "OFF" ? "ERROR" : settings.AkkaLogLevel);
            loggers.ClearLoggers();
            loggers.AddLogger<MelLogger>();
        });
    }
}

/// <summary>The <see cref="ILoggerFactory"/> that <see cref="MelLogger"/> writes to.</summary>
public sealed class MelLoggerSetup(ILoggerFactory loggerFactory) : Setup
{
    public ILoggerFactory LoggerFactory { get; } = loggerFactory;
}

/// <summary>
/// Akka's logger actor for the node. Akka.Hosting's own ILoggerFactory logger writes every event under one category
/// (Akka.Actor.ActorSystem), so per-category levels could not tell the cluster's chatter from a VM actor's lines; this
/// one uses the class that logged as the category (Akka.Cluster.ClusterCoreDaemon, Orchestrator.Actors.Hosts.VmActor),
/// with the log source (the actor's path) as a property.
/// </summary>
public sealed class MelLogger : ActorBase, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private readonly ILoggerFactory _factory;
    private readonly Dictionary<string, ILogger> _loggers = new(StringComparer.Ordinal);

    public MelLogger()
    {
        var setup = Context.System.Settings.Setup.Get<MelLoggerSetup>();
        _factory = setup.HasValue
            ? setup.Value.LoggerFactory
            : throw new ConfigurationException($"{nameof(MelLogger)} needs a {nameof(MelLoggerSetup)} in the actor system's setup");
    }

    protected override bool Receive(object message)
    {
        switch (message)
        {
            case InitializeLogger:
                Sender.Tell(new LoggerInitialized());
                return true;
            case LogEvent logEvent:
                Write(logEvent);
                return true;
            default:
                return false;
        }
    }

    private void Write(LogEvent e)
    {
        var category = Category(e.LogClass, e.LogSource);
        if (!_loggers.TryGetValue(category, out var logger))
        {
            logger = _factory.CreateLogger(category);
            _loggers[category] = logger;
        }

        Write(logger, e);
    }

    internal static void Write(ILogger logger, LogEvent e)
    {
        var level = e.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => MelLogLevel.Debug,
            Akka.Event.LogLevel.InfoLevel => MelLogLevel.Information,
            Akka.Event.LogLevel.WarningLevel => MelLogLevel.Warning,
            _ => MelLogLevel.Error,
        };
        if (logger.IsEnabled(level))
        {
            logger.Log(level, default, new AkkaLogState(Text(e.Message), e.LogSource, e.Thread.ManagedThreadId), e.Cause,
                static (state, _) => state.Message);
        }
    }

    /// <summary>
    /// The logging class's full name, without generic arity or nesting marks. A source given as a plain string has no
    /// class (Akka's DummyClassForStringSources): its category is "Akka." and the source's first word ("Akka.Cluster"; remoting's
    /// sources go under "Akka.Remote").
    /// </summary>
    internal static string Category(Type? logClass, string? logSource)
    {
        if (logClass is null || logClass == typeof(DummyClassForStringSources))
        {
            var word = (logSource ?? "").Split([' ', '(', '/'], 2)[0];
            return word switch
            {
                "" => "Akka",
                _ when word.StartsWith("remoting", StringComparison.Ordinal) => "Akka.Remote." + word, // Akka.Remote's own strings
                _ => "Akka." + word,
            };
        }

        var name = logClass.FullName ?? logClass.Name;
        var generic = name.IndexOf('`', StringComparison.Ordinal);
        return (generic < 0 ? name : name[..generic]).Replace('+', '.');
    }

    private static string Text(object? message)
    {
        try
        {
            return message?.ToString() ?? "";
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException or ArgumentException)
        {
            // A malformed format string in a log call must not lose the line.
            return $"(unformattable log message: {ex.Message}) {message?.GetType().Name}";
        }
    }

    /// <summary>The entry's state: its text, plus the Akka source and thread as properties (JSON output shows them).</summary>
    private readonly struct AkkaLogState(string message, string source, int thread) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public string Message { get; } = message;

        public int Count => 2;

        public KeyValuePair<string, object?> this[int index] => index switch
        {
            0 => new("LogSource", source),
            1 => new("Thread", thread),
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            yield return this[0];
            yield return this[1];
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => Message;
    }
}

/// <summary>
/// Akka's stand-in for its loggers before they start and after they stop (<c>akka.stdout-logger-class</c>): the same
/// entries into the node's logger factory, instead of lines in Akka's own format on stdout. Akka creates it by type, so
/// the factory is process-wide: one node, one actor system.
/// </summary>
public sealed class MelStdoutLogger : MinimalLogger
{
    private static ILoggerFactory? _factory;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, ILogger> Loggers = new(StringComparer.Ordinal);

    internal static void Use(ILoggerFactory factory)
    {
        _factory = factory;
        Loggers.Clear();
    }

    protected override void Log(object message)
    {
        if (message is not LogEvent e || _factory is not { } factory)
        {
            return;
        }

        try
        {
            MelLogger.Write(Loggers.GetOrAdd(MelLogger.Category(e.LogClass, e.LogSource), factory.CreateLogger), e);
        }
        catch (ObjectDisposedException)
        {
            // the host is gone (the process is ending): nowhere left to write
        }
    }
}
